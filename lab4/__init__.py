import lab1  # noqa: F401  (first: a Python without the project's libraries is told which to use)
