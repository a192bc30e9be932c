"""Model files: the manifest and fallback rule, the lock file, and `models pull` downloads."""
