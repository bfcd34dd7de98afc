"""The 8282 registration path: wire protocol, identity, rules, and the client side."""
