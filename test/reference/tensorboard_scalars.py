"""Every scalar TensorBoard reads from an event folder, as JSON {tag: [[step, value], ...]}.

Orphan purging is off so that a step written twice would show twice (our resume must not need it).
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator, SCALARS

acc = EventAccumulator(sys.argv[1], size_guidance={SCALARS: 0}, purge_orphaned_data=False)
acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))
