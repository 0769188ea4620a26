"""Datasets: the imdb/roidb interface, a PASCAL VOC reader and a synthetic VOC generator."""
