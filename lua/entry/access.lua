require("urlproxy").access()
