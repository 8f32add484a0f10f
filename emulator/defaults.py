"""Defaults shared by every part of chatload (imports nothing heavy).

The emulator's built-in configuration has one instance (DEFAULT_INSTANCE_ID) with one contact flow
(DEFAULT_CONTACT_FLOW_ID); the harness's default scenario targets them.
"""

DEFAULT_INSTANCE_ID = "11111111-2222-4333-8444-555555555555"
DEFAULT_CONTACT_FLOW_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
DEFAULT_REGION = "us-east-1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700

# Dummy credentials for talking to the emulator (signatures are not verified).
DEFAULT_ACCESS_KEY = "AKIDCHATLOAD"
DEFAULT_SECRET_KEY = "chatload"
