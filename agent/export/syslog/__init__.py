"""Syslog export: RFC 5424 messages with RFC 5674 alarm data, over UDP, TCP, TLS and RELP."""
