"""llmlib: the package built by the course "LLMs from Scratch".

Every module except this one is generated from a chapter notebook (see the header
of each file); edit the notebook and run `make export`, never the module.
"""

__version__ = "0.1.0"
