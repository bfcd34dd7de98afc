-- luacheck config for the Lua unit tests: as lua/'s, and the shim may replace the `ngx` global.
std = "ngx_lua"
max_line_length = 110
globals = { "ngx" }
