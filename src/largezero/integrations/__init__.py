"""Adapters that let fleet engines run the library job: ironic-python-agent (``ironic``) and
Ansible (the collection in ``ansible_collections/largezero/storage``). Each calls
``largezero.zero_job`` and adds no zeroing of its own; nothing else in the package imports them.
"""
