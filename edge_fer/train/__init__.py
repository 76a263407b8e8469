"""Workstation side: datasets, models, training, evaluation and CycleGAN balancing.

Everything here may import TensorFlow; nothing in the runtime half imports this package.
"""
