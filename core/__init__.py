"""strato.core: broker, messages and RPC, KVS, job manager, ids, config, the plugin
contract (hookspecs.py) and the plugin manager."""
