"""
Queue stores: where background jobs live while they wait.

L{txgearman.store.memory.MemoryQueueStore} keeps them in memory (the
default); the Redis store makes them durable.
"""
