"""A small file to try completions on: `zi-coder complete examples/calc.py:9:37`."""


def add(a: float, b: float) -> float:
    return a + b


def mean(values: list[float]) -> float:
    # Sum the values, then divide by 
    
