/**
 * A tenant's display name: free text (any language, any punctuation; control characters are
 * escaped wherever it is printed), at most NAME_MAX characters, so a pasted file or a runaway
 * script cannot put 120 KB into every `tenant list` and event.
 *
 * @example
 *   nameProblem('x'.repeat(201)) // 'is 201 characters long; the limit is 200'
 */
export const NAME_MAX = 200;

export function nameProblem(name: string): string | null {
  // Characters as a person counts them (code points), not UTF-16 units.
  const length = [...name].length;
  if (length > NAME_MAX) return `is ${length} characters long; the limit is ${NAME_MAX}`;
  return null;
}
