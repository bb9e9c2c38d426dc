"""Federated analysis for sites that may not pool patient rows: each site writes an aggregate bundle
(``bundle``), the coordinating site pools the bundles (``pool``, ``meta``, ``report``; command line:
``python -m pipeline.federated pool BUNDLE... -o OUT``)."""
