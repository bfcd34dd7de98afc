"""The lab: the whole fleet as local processes on loopback addresses, no root needed."""
