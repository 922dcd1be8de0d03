"""Meeting rooms, roles and moderation rules (webinars, 1:1 video support).

Arrives with the meetings capability; nothing here yet.
"""
