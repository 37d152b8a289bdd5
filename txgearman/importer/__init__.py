"""
C{txgearman-import}: move the background jobs queued in gearmand's
persistent queue (its SQLite table or its Redis keys) into txgearman's
store, so that moving from gearmand needs no draining first.

L{txgearman.importer.gearmand} reads gearmand's queues;
L{txgearman.importer.script} is the command.
"""
