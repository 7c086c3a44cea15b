"""Content checks run before approval: pure functions over a publication's text.

The core of the checks imports nothing outside ``publisher``; editable word lists are
handed in as a :class:`~publisher.checks.lists.CheckLists` value.
"""
