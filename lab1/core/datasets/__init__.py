"""Where the raw data comes from: ``temperature`` generates weather stations with labelled
sensor faults (or reads a CSV of real readings); ``images`` reads CIFAR-10 or Fashion-MNIST.
Pure functions of params and seed: data_creation.py writes what they return."""
