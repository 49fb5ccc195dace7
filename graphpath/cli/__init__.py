"""The command line: one module per command group (:mod:`.static`, :mod:`.numeric`,
:mod:`.report`, :mod:`.audit`, :mod:`.zoo`), the group and its exit codes in :mod:`.main`,
output writing in :mod:`.output`, progress bars in :mod:`.progress`."""
