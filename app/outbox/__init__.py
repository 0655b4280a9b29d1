"""Mail out: what each kind of mail says, and sending it."""
