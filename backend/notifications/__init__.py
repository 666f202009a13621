"""In-app notifications and the outbox that carries them to phones and email."""
