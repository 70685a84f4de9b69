"""Set-vs-set image metrics: FID/KID (clean-fid), CLIP-FID, CMMD, style similarity, Gram distance.

Entry point: `stylekit.metrics.score.score_sets(ScoreConfig)`. The math lives in frechet.py and
mmd.py, per-image features and their cache in features.py. Definitions: docs/metrics.md.
"""
