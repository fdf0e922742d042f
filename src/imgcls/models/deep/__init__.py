"""The deep school's machinery: the backbone catalogue, networks with their preprocessing inside,
the Lightning training loop, samplers, augmentation and pretrained weights. The two deep
Classifiers built on it are :mod:`imgcls.models.finetune` and :mod:`imgcls.models.probe`."""
