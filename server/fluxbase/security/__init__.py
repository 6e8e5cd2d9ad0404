"""Request-level protections: client address, rate limits, CSRF, security headers, API keys."""
