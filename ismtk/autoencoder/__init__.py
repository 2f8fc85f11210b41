"""The atomic autoencoder of ISM and the structure tokens made from it, one module per step.

``model`` (distance-biased graph transformer), ``geometry`` (distances, Kabsch), ``losses``, ``io``
(save, load, embed chains), ``corpus`` (training chains and microenvironment batches), ``train`` (the
trainer behind ``ismtk train-ae``), ``codebook`` (k-means codebook behind ``ismtk cluster``). The
package imports nothing itself, so that reading a codebook does not load torch.
"""
