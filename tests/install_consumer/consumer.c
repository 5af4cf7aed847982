/* A program built against an installed df11 (pkg-config or find_package):
 * the header, the library and its SONAME must all be found where installed. */
#include <stdio.h>
#include <string.h>

#include <df11_c.h>

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "/nonexistent/model.df11";
  df11_file* f = NULL;
  const df11_status s = df11_open(path, &f);
  printf("df11 %s (C API %d): open %s -> %s: %s\n", df11_version(), df11_c_api_version(), path,
         df11_status_name(s), df11_last_error());
  if (s == DF11_OK) {
    printf("%llu tensors\n", (unsigned long long)df11_tensor_count(f));
    df11_close(f);
    return 0;
  }
  /* Without a file: the missing path must be reported as an I/O error. */
  return argc > 1 || strcmp(df11_status_name(s), "Io") != 0 || strstr(df11_last_error(), path) == NULL;
}
