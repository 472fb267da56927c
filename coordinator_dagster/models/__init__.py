"""Participant models: the tracker interface, the manifest, the in-process runner, the runner
service with its worker processes and HTTP protocol (server and client), example models, and the
round inputs models are handed."""
