"""Networks: VGG features (nets.vgg), and the models each command family builds on.

Import the submodule you need (`from stylekit.nets.vgg import VGGFeatures`); this package imports
nothing itself so that one network's dependencies never load for another.
"""
