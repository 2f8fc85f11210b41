"""Protein language models: ESM2 backbones, structure-token heads, structure-tuning, embeddings and tokens
predicted from sequence alone.

``esm`` (load from hub names, files or HF folders; save for fair-esm and HF), ``forward`` (fused forward
pass), ``heads`` (token heads), ``tune_data`` / ``tuner`` / ``tune`` (data, model and trainer of
``ismtk structure-tune``), ``embed`` (``ismtk embed``), ``predict`` (``ismtk predict-tokens``). The
package imports nothing itself, so that the command line starts without torch.
"""
