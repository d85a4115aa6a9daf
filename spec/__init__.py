"""The platform-neutral service description: components produce it, the back ends consume it.

It depends on nothing else in the project, so every layer above can use it.
"""
