"""lossatlas: batched loss-landscape measurements of neural networks (engine, no Snakemake inside)."""
