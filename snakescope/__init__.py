"""snakescope: quantitative microscopy of cells, one pure function per step.

The library never imports snakemake; the workflow under ``workflow/`` calls it.
"""

__version__ = "0.1.0"
