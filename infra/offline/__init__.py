"""The offline tool behind `python -m infra`: the program run under mocks, then rendered,
checked against the policy pack or compared with a git ref."""
