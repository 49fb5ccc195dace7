"""The command line: one module per command group (:mod:`.static`, :mod:`.numeric`,
:mod:`.report`, :mod:`.audit`, :mod:`.zoo`), the group and its exit codes in :mod:`.main`,
output writing and the ``--format``/``-o`` options in :mod:`.output`, the options several
commands share in :mod:`.options`, progress bars in :mod:`.progress`. Command modules never
import :mod:`.main`."""
