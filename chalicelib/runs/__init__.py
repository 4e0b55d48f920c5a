"""Production runs of deployed flows: starting and stopping them (production.py), their
parameters as the execution's input (inputs.py), and the files of IncludeFile parameters
(includes.py). Listing runs is the Client API's (chalicelib/query/).
"""
