-- luacheck config for the data plane: OpenResty globals, and the 110-column limit Python uses.
std = "ngx_lua"
max_line_length = 110
