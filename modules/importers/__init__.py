"""The jobs' work: read from sources, write through models, report to a tracker."""
