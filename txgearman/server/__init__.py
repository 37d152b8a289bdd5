"""
The Gearman job server.

L{txgearman.server.core.JobServer} is the model: functions, jobs and
sessions, with no sockets and time from an injected clock.  The protocols
adapt it to the wire (L{txgearman.server.protocol} for binary packets,
L{txgearman.server.admin} for the text commands) and
L{txgearman.server.service} wires it into a twistd service; C{tap} is the
command line.
"""
