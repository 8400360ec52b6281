import { native } from './addon';

/** close(2) a descriptor this process owns, where a failure (it was closed already) leaves
 * nothing to do: cleanup paths. */
export function closeQuietly(fd: number): void {
  try {
    native.close(fd);
  } catch {
    /* already closed */
  }
}
