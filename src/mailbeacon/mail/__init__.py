"""Mail: SMTP sending, the embedded outbox, and the sending flow."""
