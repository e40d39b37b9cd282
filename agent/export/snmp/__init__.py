"""SNMP: PROVSYNC-MIB OIDs, the command responder and the notification targets."""
