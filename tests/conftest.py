"""Test order for ``make test``'s two workers (pytest-xdist, ``--dist loadfile``: each file runs
whole on one worker, its tests in order). The files that run Snakemake end to end are the longest,
so they are handed out first and the short files fill the other worker meanwhile; within a file
the order is kept (the end-to-end tests build on the smoke run before them)."""

END_TO_END_FIRST = ("test_workflow.py", "test_paper_shaped.py", "test_workflow_external.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return END_TO_END_FIRST.index(name) if name in END_TO_END_FIRST else len(END_TO_END_FIRST)

    items.sort(key=rank)
