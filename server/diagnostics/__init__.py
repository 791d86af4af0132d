"""Diagnostics: static checks on open and save, then an AI review on the job queue."""
