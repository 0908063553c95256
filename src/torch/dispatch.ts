/**
 * Handles to ATen operators. `aten('conv2d')` names an operator by its schema (`aten::conv2d`,
 * overload after a dot: `aten('add.Tensor')`); the handle resolves on first call and converts its
 * positional arguments by the schema's types. Autograd and autocast apply as in PyTorch.
 */
import { native } from './native.js';

export type OpHandle = (...args: unknown[]) => any;

export function aten(qualifiedName: string): OpHandle {
  const dot = qualifiedName.indexOf('.');
  const name = 'aten::' + (dot < 0 ? qualifiedName : qualifiedName.slice(0, dot));
  const overload = dot < 0 ? '' : qualifiedName.slice(dot + 1);
  let id = -1;
  return (...args: unknown[]) => {
    if (id < 0) id = native.op(name, overload);
    return native.call(id, ...args);
  };
}
