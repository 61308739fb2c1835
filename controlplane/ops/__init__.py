"""Operations run by the CLI and by beat: secret rotation, backups, readiness, the startup checks."""
