"""The security advisor: catalog checks that find what exposes data through the API (`fluxbase lint`)."""
