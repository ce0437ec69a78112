# Project code builds warning-clean; dependencies' headers come in as SYSTEM through their imported targets.
function(ductrpc_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion -Wno-missing-field-initializers
                         $<$<BOOL:${DUCTRPC_WERROR}>:-Werror>)
endfunction()

if(DUCTRPC_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
