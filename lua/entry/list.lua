require("routelist").serve()
