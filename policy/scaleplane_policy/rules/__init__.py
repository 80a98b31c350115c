"""The rules, one module per concern. Each check takes plain data and yields messages."""
