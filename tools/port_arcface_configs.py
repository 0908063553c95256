#!/usr/bin/python3
"""Writes configs/<name>.ts from insightface arcface_torch's configs/<name>.py (the settings only).

usage: /usr/bin/python3 tools/port_arcface_configs.py /path/to/arcface_torch/configs
Keys become camelCase; DALI and WandB settings are dropped (our loader is native; no WandB logger).
"""
import importlib.util
import json
import os
import re
import sys
import types

DROPPED = {'dali', 'wandb_key', 'suffix_run_name', 'using_wandb', 'wandb_entity', 'wandb_project', 'wandb_log_all',
           'save_artifacts', 'wandb_resume'}


def camel(key):
    return re.sub(r'_([a-z0-9])', lambda m: m.group(1).upper(), key)


def main(src):
    easydict = types.ModuleType('easydict')

    class EasyDict(dict):
        __getattr__ = dict.__getitem__

        def __setattr__(self, k, v):
            self[k] = v

    easydict.EasyDict = EasyDict
    sys.modules['easydict'] = easydict
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'configs')
    for name in sorted(os.listdir(src)):
        if not name.endswith('.py') or name in ('__init__.py', 'base.py'):
            continue
        spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(src, name))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        lines = []
        for key, value in module.config.items():
            if key in DROPPED:
                continue
            if isinstance(value, tuple):
                value = list(value)
            lines.append(f'  {camel(key)}: {json.dumps(value)},')
        with open(os.path.join(out_dir, name[:-3] + '.ts'), 'w') as f:
            f.write(f"// Ported from insightface arcface_torch configs/{name} (tools/port_arcface_configs.py).\n")
            f.write("import { defineConfig } from 'arcface-ts/train';\n\n")
            f.write('export default defineConfig({\n' + '\n'.join(lines) + '\n});\n')


if __name__ == '__main__':
    main(sys.argv[1])
