"""The SMTP gateway (aiosmtpd). STUB."""
