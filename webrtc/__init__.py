"""Media worker (aiortc): the server end of browser softphones and audio plumbing.

Arrives with the softphone capability; nothing here yet.
"""
