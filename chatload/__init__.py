"""chatload: load and throttling tests for Amazon Connect chat.

Kept free of imports: importing one part of chatload never loads another (docs/internals.md).
"""
