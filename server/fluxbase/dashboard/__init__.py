"""Dashboard administrators: /dashboard/auth/* (login, 2FA, sessions, passwords)."""
